"""The demo jurisdiction: Qingdao 市南区 (370202), built deterministically from a seed."""
