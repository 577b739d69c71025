"""curate: the data contract of sidkit (EXIF + raw levels, pairing, splits, manifests, checks).

curate never imports torch, capture or train.
"""
