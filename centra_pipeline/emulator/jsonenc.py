"""JSON the way Centra's PHP backend prints it: compact, ASCII-only, slashes escaped as `\\/`.

PHP's json_encode escapes "/" by default (URLs arrive as "https:\\/\\/..."), and a "/" can only
occur inside JSON strings, so replacing it in the encoded text is exact.
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).replace("/", "\\/").encode("ascii")
