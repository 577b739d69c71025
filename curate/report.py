"""`curate report`: one self-contained HTML page of a dataset, to look at every pair at a glance.

Each pair shows the long exposure rendered and the short amplified by its ratio side by side (small
JPEG thumbnails embedded as data URIs: curate.thumbs), with its exposures, ISO, ratio,
camera, environment, split and validation findings as badges. At the top: pair and scene counts per
split and environment, ratio and ISO histograms (inline SVG), and filters by split, environment and
finding code. Plain HTML/CSS/JS: no server, no network; large datasets paginate.
"""
from __future__ import annotations

import html
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .common.atomic import atomic_write
from .common.errors import SidkitError
from .common.html import as_float, page
from .exposure import RATIO_MAX, RATIO_MIN, format_exposure
from .files import file_problem
from .findings import CODES, Finding
from .manifest import Manifest, black_levels, is_longs_only, read_manifest
from .thumbs import Job, cache_dir, render_all

PAGE_SIZE = 50           # pairs per page
SEVERITY_ORDER = {"error": 0, "warning": 1}


def load_findings(path: str | os.PathLike) -> list[dict]:
    """Findings as `curate validate --format json` prints them; SidkitError when the file is not that."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SidkitError(f"{path}: no such findings file; write one with "
                          "`curate validate MANIFEST --format json > findings.json`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SidkitError(f"{path}: not JSON ({exc}); write it with `curate validate MANIFEST --format json`") from None
    if not isinstance(data, list) or not all(isinstance(f, dict) and "code" in f for f in data):
        raise SidkitError(f"{path}: expected a list of findings with a 'code' each, as "
                          "`curate validate MANIFEST --format json` prints")
    return [{"pair_id": str(f.get("pair_id") or ""), "path": str(f.get("path") or ""), "code": str(f["code"]),
             "severity": str(f.get("severity") or CODES.get(f["code"], "warning")),
             "message": str(f.get("message") or "")} for f in data]


def counts_by_split(df: pd.DataFrame) -> list[dict]:
    """Pairs and scenes per split and environment, plus an 'all' environment row per split."""
    rows = []
    splits = sorted(df["split"].unique(), key=lambda s: (("train", "val", "test") + (s,)).index(s))
    for split in splits:
        part = df[df["split"] == split]
        for env in sorted(part["environment"].unique()) + ["all"]:
            group = part if env == "all" else part[part["environment"] == env]
            rows.append({"split": split, "environment": env, "pairs": len(group),
                         "scenes": group["scene_id"].nunique()})
    return rows


def histogram_svg(values: list[float], title: str, unit: str = "", log: bool = False,
                  good: tuple[float, float] | None = None) -> str:
    """An inline SVG bar chart: one bar per value when there are few distinct ones, else 12 bins.

    Bars wholly outside ``good`` (a range) are drawn red.
    """
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not log)]
    if not values:
        return f'<figure class="hist"><figcaption>{html.escape(title)}: no values</figcaption></figure>'
    distinct = sorted(set(values))
    if len(distinct) <= 12:
        bars = [(f"{v:g}{unit}", Counter(values)[v], v, v) for v in distinct]
    else:
        data = np.log10(values) if log else np.asarray(values, float)
        counts, edges = np.histogram(data, bins=12)
        if log:
            edges = 10 ** edges
        bars = [(f"{lo:.3g}-{hi:.3g}{unit}", int(n), lo, hi) for n, lo, hi in zip(counts, edges[:-1], edges[1:])]
    width, height, pad = 34 * len(bars) + 20, 150, 40
    top = max(n for _, n, _, _ in bars)
    parts = []
    for i, (label, n, lo, hi) in enumerate(bars):
        h = 0 if top == 0 else (height - pad - 16) * n / top
        x, y = 10 + 34 * i, height - pad - h
        bad = good is not None and (hi < good[0] or lo > good[1])
        parts.append(f'<rect x="{x}" y="{y:.1f}" width="28" height="{h:.1f}" class="{"bad" if bad else "bar"}">'
                     f'<title>{html.escape(label)}: {n}</title></rect>'
                     f'<text x="{x + 14}" y="{y - 3:.1f}" class="n">{n}</text>'
                     f'<text x="{x + 14}" y="{height - pad + 12}" class="lab" '
                     f'transform="rotate(30 {x + 14} {height - pad + 12})">{html.escape(label)}</text>')
    return (f'<figure class="hist"><svg width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
            f'<figcaption>{html.escape(title)}</figcaption></figure>')


def _badge(text: str, kind: str = "", tip: str = "") -> str:
    title = f' title="{html.escape(tip)}"' if tip else ""
    return f'<span class="badge {kind}"{title}>{html.escape(text)}</span>'


def _exposure(seconds) -> str:
    try:
        return format_exposure(float(seconds))
    except (TypeError, ValueError, ZeroDivisionError):
        return str(seconds)


def _shown(value, fmt: str = "g") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "?"
    return format(v, fmt) if math.isfinite(v) else "?"


def _pair_card(row, images: dict[str, tuple[str, str]], found: list[dict]) -> str:
    """One pair: the two thumbnails (or what went wrong) and its badges; a row of a longs-only
    manifest (``images`` has no short): its one picture and the long's values."""
    codes = sorted({f["code"] for f in found})
    figures = []
    for role, caption in (("long", f"long {_exposure(row.long_exposure_s)} s"),
                          ("short", f"short {_exposure(row.short_exposure_s)} s × {_shown(row.ratio, '.4g')}")):
        if role not in images:
            continue
        uri, error = images[role]
        if uri:
            img = f'<img data-src="{uri}" alt="{html.escape(role)} exposure of {html.escape(str(row.pair_id))}">'
        else:
            img = f'<div class="noimg">{html.escape(error)}</div>'
        figures.append(f'<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>')
    ratio = float(row.ratio) if _shown(row.ratio) != "?" else math.nan
    ratio_ok = RATIO_MIN <= ratio <= RATIO_MAX
    badges = [_badge(f"split {row.split or '?'}", "split"), _badge(str(row.environment or "?"), "env")]
    if "short" in images:
        badges += [_badge(f"ratio {_shown(row.ratio, '.4g')}", "" if ratio_ok else "error",
                          "" if ratio_ok else f"outside {RATIO_MIN:g}-{RATIO_MAX:g}"),
                   _badge(f"ISO {_shown(row.short_iso)}" + ("" if _shown(row.short_iso) == _shown(row.long_iso)
                                                              else f" / {_shown(row.long_iso)}")),
                   _badge(f"{_exposure(row.short_exposure_s)} s / {_exposure(row.long_exposure_s)} s")]
    else:
        badges += [_badge(f"ISO {_shown(row.long_iso)}"), _badge(f"{_exposure(row.long_exposure_s)} s")]
    badges.append(_badge(str(row.camera or "?"), "camera"))
    order = sorted(found, key=lambda f: (SEVERITY_ORDER.get(f["severity"], 2), f["code"]))
    badges += [_badge(f["code"], f["severity"], f["message"]) for f in order]
    notes = "".join(f'<li class="{html.escape(f["severity"])}"><b>{html.escape(f["code"])}</b> '
                    f'{html.escape(f["message"])}</li>' for f in order)
    return (f'<article class="pair" data-split="{html.escape(str(row.split))}" '
            f'data-env="{html.escape(str(row.environment))}" data-codes=" {" ".join(codes)} ">'
            f'<h3>{html.escape(str(row.pair_id))} <small>scene {html.escape(str(row.scene_id))}</small></h3>'
            f'<div class="shots">{"".join(figures)}</div><div class="badges">{"".join(badges)}</div>'
            + (f'<ul class="notes">{notes}</ul>' if notes else "") + "</article>")


def pair_jobs(manifest: Manifest, row, cache: Path | None, longs_only: bool = False) -> dict[str, Job]:
    """role -> the thumbnail job of the pair's long and its short amplified by the ratio (the long
    alone in a longs-only manifest, where the short is the same file)."""
    gain = as_float(row.ratio)
    gain = gain if math.isfinite(gain) and gain > 0 else 1.0
    try:
        black, white = tuple(black_levels(row.black_level)), float(row.white_level)
    except (TypeError, ValueError):
        black, white = (0.0,), 65535.0
    return {role: (str(manifest.resolve(getattr(row, f"{role}_path"))), black, white, 1.0 if role == "long" else gain,
                   str(cache or "")) for role in (("long",) if longs_only else ("long", "short"))}


def unreachable_paths(manifest: Manifest) -> list[Finding]:
    """An `unreadable` finding for each manifest path that the OS cannot even look up (too long for
    it, a folder above it that cannot be entered): a check that stats it would stop on it."""
    out = []
    for row in manifest.rows.itertuples():
        for rel in dict.fromkeys((row.short_path, row.long_path)):
            path = manifest.resolve(rel)
            try:
                os.stat(path)
            except (FileNotFoundError, NotADirectoryError, ValueError):
                continue              # missing: validate says so
            except OSError:
                problem = file_problem(path, str(row.pair_id))
                if problem is not None:
                    out.append(Finding(problem.pair_id, rel, problem.code, problem.message))
    return out


def build_report(manifest: str | os.PathLike, out: str | os.PathLike, findings: list[dict] | None = None,
                 page_size: int = PAGE_SIZE, cache: Path | None | bool = True, workers: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Write the HTML page of ``manifest`` to ``out``; return what it counted.

    ``findings``: dicts as `curate validate --format json` prints (None runs the fast checks).
    ``cache``: a thumbnail folder, True for cache_dir(), False for none. ``workers``: see
    render_all; ``progress(n)`` as n of the 2 x pairs thumbnails are done. The page is written
    atomically; thumbnails that cannot be rendered show why instead.
    """
    if page_size < 1:
        raise SidkitError(f"--page-size {page_size}: give a positive number of pairs per page")
    loaded = read_manifest(manifest)
    df = loaded.rows
    if findings is None:
        from .validate import validate_manifest
        unreachable = unreachable_paths(loaded)        # their pairs' findings; the checks go on with the others
        checked = loaded.with_rows(df[~df["pair_id"].isin({f.pair_id for f in unreachable})])
        findings = [f.to_dict() for f in unreachable + validate_manifest(checked, fast=True)]
    cache = cache_dir() if cache is True else (cache or None)
    by_pair: dict[str, list[dict]] = {}
    pair_ids = set(df["pair_id"].astype(str))
    general = []
    for f in findings:
        (by_pair.setdefault(f["pair_id"], []) if f["pair_id"] in pair_ids else general).append(f)
    only_longs = is_longs_only(df)
    per_pair = [pair_jobs(loaded, row, cache, only_longs) for row in df.itertuples()]
    slots = Counter(job for jobs in per_pair for job in jobs.values())    # a long serves all its shorts
    unique = list(slots)
    done = dict(zip(unique, render_all(unique, workers, progress, [slots[job] for job in unique])))
    cards, rendered, failed = [], 0, 0
    for row, jobs in zip(df.itertuples(), per_pair):
        images = {role: done[job] for role, job in jobs.items()}
        rendered += sum(bool(uri) for uri, _ in images.values())
        failed += sum(not uri for uri, _ in images.values())
        known = by_pair.setdefault(str(row.pair_id), [])
        for role, (uri, error) in images.items():    # a file that would not render is a finding too
            code, _, detail = error.partition(": ")
            path = str(getattr(row, f"{role}_path"))
            if not uri and not any(f["code"] == code and Path(f["path"]).name == Path(path).name for f in known):
                known.append({"pair_id": str(row.pair_id), "path": path, "code": code, "severity": "error",
                              "message": f"{detail} (found while rendering its thumbnail)"})
                findings = findings + [known[-1]]
        cards.append(_pair_card(row, images, known))
    counts = counts_by_split(df)
    code_counts = Counter(f["code"] for f in findings)
    body = _header(manifest, df, counts, code_counts, general, findings, only_longs) + \
        f'<main id="pairs">{"".join(cards)}</main>'
    text = page(f"{Path(manifest).name}: sidkit dataset report", body,
                SCRIPT.replace("__PAGE_SIZE__", str(int(page_size))))
    with atomic_write(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    return {"path": Path(out), "pairs": len(df), "scenes": int(df["scene_id"].nunique()), "counts": counts,
            "findings": dict(code_counts), "thumbnails": rendered, "missing_thumbnails": failed}


def _header(manifest, df, counts, code_counts, general, findings, longs_only: bool = False) -> str:
    rows = "".join(f'<tr><td>{html.escape(c["split"])}</td><td>{html.escape(c["environment"])}</td>'
                   f'<td data-count="pairs:{html.escape(c["split"])}:{html.escape(c["environment"])}">{c["pairs"]}</td>'
                   f'<td data-count="scenes:{html.escape(c["split"])}:{html.escape(c["environment"])}">{c["scenes"]}</td></tr>'
                   for c in counts)
    errors = sum(f["severity"] == "error" for f in findings)
    severity = {f["code"]: f["severity"] for f in findings}
    code_rows = "".join(f'<li>{_badge(code, severity[code])} <span data-finding-count="{html.escape(code)}">{n}</span></li>'
                        for code, n in sorted(code_counts.items()))
    general_rows = "".join(f'<li class="{html.escape(f["severity"])}"><b>{html.escape(f["code"])}</b> '
                           f'{html.escape(f["path"])} {html.escape(f["message"])}</li>' for f in general)
    cameras = ", ".join(f"{html.escape(str(c))} ({n})" for c, n in df["camera"].value_counts().items())
    options = lambda values: "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>'
                                     for v in values)
    splits = [c["split"] for c in counts if c["environment"] == "all"]
    envs = sorted(df["environment"].astype(str).unique())
    return (f'<header><h1>{html.escape(Path(manifest).name)}</h1>'
            f'<p><span id="total-pairs" data-count="pairs">{len(df)}</span> '
            f'{"long exposures (each its own short)" if longs_only else "pairs"}, '
            f'<span data-count="scenes">{df["scene_id"].nunique()}</span> scenes; cameras: {cameras}. '
            f'<span data-count="findings">{len(findings)}</span> findings, '
            f'<span data-count="errors">{errors}</span> errors.</p>'
            f'<div class="top"><table class="counts"><thead><tr><th>split</th><th>environment</th><th>pairs</th>'
            f'<th>scenes</th></tr></thead><tbody>{rows}</tbody></table>'
            + ("" if longs_only else histogram_svg(pd.to_numeric(df["ratio"], errors="coerce").tolist(),
                                                   "ratio (long / short)", "×", log=True, good=(RATIO_MIN, RATIO_MAX)))
            + histogram_svg(pd.to_numeric(df["long_iso" if longs_only else "short_iso"], errors="coerce").tolist(),
                            "ISO (long)" if longs_only else "ISO (short)")
            + f'<ul class="codes">{code_rows or "<li>no findings</li>"}</ul></div>'
            + (f'<ul class="notes general">{general_rows}</ul>' if general_rows else "")
            + '<nav class="filters">'
            f'<label>split <select id="f-split"><option value="">all</option>{options(splits)}</select></label> '
            f'<label>environment <select id="f-env"><option value="">all</option>{options(envs)}</select></label> '
            f'<label>finding <select id="f-code"><option value="">any</option><option value="-">none</option>'
            f'{options(sorted(code_counts))}</select></label> '
            '<span id="shown"></span> <span class="pages"><button id="prev">&larr;</button> '
            '<span id="page"></span> <button id="next">&rarr;</button></span></nav></header>')


SCRIPT = """
(function(){
  var size = __PAGE_SIZE__, pageNo = 0;
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.pair'));
  function sel(id){ return document.getElementById(id); }
  function matching(){
    var s = sel('f-split').value, e = sel('f-env').value, c = sel('f-code').value;
    return cards.filter(function(a){
      var codes = a.getAttribute('data-codes');
      return (!s || a.dataset.split === s) && (!e || a.dataset.env === e) &&
        (!c || (c === '-' ? codes.trim() === '' : codes.indexOf(' ' + c + ' ') >= 0));
    });
  }
  function show(){
    var hits = matching(), pages = Math.max(1, Math.ceil(hits.length / size));
    pageNo = Math.min(pageNo, pages - 1);
    var first = pageNo * size, visible = hits.slice(first, first + size);
    cards.forEach(function(a){ a.hidden = true; });
    visible.forEach(function(a){
      a.hidden = false;
      a.querySelectorAll('img[data-src]').forEach(function(img){
        if (!img.getAttribute('src')) img.src = img.dataset.src;
      });
    });
    sel('shown').textContent = hits.length + ' of ' + cards.length + ' pairs match';
    sel('shown').dataset.matching = hits.length;
    sel('page').textContent = 'page ' + (pageNo + 1) + ' of ' + pages;
    sel('prev').disabled = pageNo === 0; sel('next').disabled = pageNo >= pages - 1;
    document.body.dataset.visiblePairs = visible.length;
  }
  // the filters live in the address (#split=test&env=indoor&code=misaligned&page=2): views can be linked
  var ids = {split: 'f-split', env: 'f-env', code: 'f-code'};
  location.hash.replace(/^#/, '').split('&').forEach(function(part){
    var kv = part.split('='), key = decodeURIComponent(kv[0]), value = decodeURIComponent(kv[1] || '');
    if (ids[key] && Array.prototype.some.call(sel(ids[key]).options, function(o){ return o.value === value; }))
      sel(ids[key]).value = value;
    if (key === 'page') pageNo = Math.max(0, (parseInt(value, 10) || 1) - 1);
  });
  function remember(){
    var parts = Object.keys(ids).filter(function(k){ return sel(ids[k]).value; })
      .map(function(k){ return k + '=' + encodeURIComponent(sel(ids[k]).value); });
    if (pageNo) parts.push('page=' + (pageNo + 1));
    history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname);
  }
  Object.keys(ids).forEach(function(k){
    sel(ids[k]).addEventListener('change', function(){ pageNo = 0; show(); remember(); });
  });
  sel('prev').addEventListener('click', function(){ pageNo--; show(); remember(); });
  sel('next').addEventListener('click', function(){ pageNo++; show(); remember(); });
  show();
  window.addEventListener('load', function(){
    var imgs = document.querySelectorAll('article.pair:not([hidden]) img');
    var ok = Array.prototype.filter.call(imgs, function(i){ return i.complete && i.naturalWidth > 0; });
    document.body.dataset.imagesShown = imgs.length;
    document.body.dataset.imagesRendered = ok.length;
  });
})();
"""
