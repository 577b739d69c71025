"""The pieces of sidkit's HTML reports (`curate report`, `train report`): one page shell with the
shared style, pictures embedded as data URIs, numbers read from table cells."""
from __future__ import annotations

import base64
import html
import math


def page(title: str, body: str, script: str = "") -> str:
    """A whole HTML document with the shared style; ``script`` runs at the end of the body."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
            f'<body>\n{body}\n<script>{script}</script>\n</body></html>\n')


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def as_float(value) -> float:
    """A number from a cell, NaN when it is none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:12px 0 4px} h3{font-size:14px;margin:0 0 6px} small{color:#666;font-weight:normal}
.top{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
td[data-count]{text-align:right}
.hist{margin:0} .hist figcaption{font-size:12px;color:#444;text-align:center}
.hist .bar{fill:#4a7bb7} .hist .bad{fill:#c0392b} .hist text{font-size:10px;text-anchor:middle}
.hist .lab{text-anchor:start}
ul.codes{list-style:none;padding:0;margin:0} ul.codes li{margin:2px 0}
nav.filters{position:sticky;top:0;background:#fafafa;padding:8px 0;border-bottom:1px solid #ddd;z-index:1}
nav select{margin-right:12px}
main{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
.pair{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:660px;box-sizing:border-box}
.pair[hidden]{display:none}
.shots{display:flex;gap:8px} .shots figure{margin:0;flex:1;min-width:0;max-width:calc(50% - 4px)}
.shots img{width:100%;display:block;background:#000}
.shots figcaption{font-size:12px;color:#444}
.noimg{height:200px;display:flex;align-items:center;justify-content:center;text-align:center;
 background:#f3dede;color:#8a1f11;font-size:12px;padding:8px;box-sizing:border-box;word-break:break-all}
.badge{display:inline-block;border-radius:10px;padding:0 8px;margin:4px 4px 0 0;background:#e8e8e8;font-size:12px}
.badge.split{background:#dde8f6} .badge.env{background:#e3f1e0} .badge.camera{background:#efe6f5}
.badge.error{background:#c0392b;color:#fff} .badge.warning{background:#f0b429;color:#222}
ul.notes{margin:6px 0 0;padding-left:18px;font-size:12px} li.error{color:#8a1f11} li.warning{color:#7a5a00}
"""
