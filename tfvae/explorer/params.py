"""The query parameters of the explorer's requests, checked before any run is touched.

Each parser takes the raw string (or None) and returns a plain value, or raises ``BadRequest`` with the HTTP
status and a sentence naming the parameter: codes of the wrong length, non-numbers, NaN or inf, too many codes,
labels that are not the run's classes, test-image indices out of range.
"""

import math

MAX_CODES = 64  # codes in one /decode request
MAX_STEPS = 32  # images in one interpolation
MAX_QUERY = 64 * 1024  # characters in a query string
MAX_ABS = 1e4  # |z| beyond this is no place a decoder has seen; refused rather than decoded to noise


class BadRequest(ValueError):
    """A request the explorer refuses: ``status`` (4xx) and a message for the page."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _integer(text, what):
    if text is None or text == "":
        raise BadRequest(f"pass {what}")
    text = text.strip()
    if not (text.lstrip("-").isdigit() and len(text) <= 12):
        raise BadRequest(f"{what} must be an integer, got {text[:40]!r}")
    return int(text)


def codes(text, latent_dim):
    """``z=``: one code of ``latent_dim`` comma-separated numbers, or up to MAX_CODES of them separated by ``;``.

    Returns:
      list of lists of floats.
    """
    if text is None or not text.strip():
        raise BadRequest(f"pass z=<{latent_dim} comma-separated numbers>")
    rows = text.split(";")
    if len(rows) > MAX_CODES:
        raise BadRequest(f"{len(rows)} codes in one request; at most {MAX_CODES}", status=413)
    out = []
    for row in rows:
        parts = row.split(",")
        if len(parts) != latent_dim:
            raise BadRequest(f"a code of {len(parts)} numbers, but this run's latent has {latent_dim}")
        values = []
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                raise BadRequest(f"z holds {part.strip()[:40]!r}, which is not a number") from None
            if not math.isfinite(value):
                raise BadRequest(f"z holds {part.strip()}: codes must be finite numbers")
            if abs(value) > MAX_ABS:
                raise BadRequest(f"z holds {value:g}: codes lie within +-{MAX_ABS:g}")
            values.append(value)
        out.append(values)
    return out


def label(text, conditional, num_classes):
    """``label=``: a cvae's class id (required for a cvae, refused for other models); None for those."""
    if not conditional:
        if text not in (None, ""):
            raise BadRequest("label given, but this run is not a cvae: only a cvae takes a class")
        return None
    if text in (None, ""):
        raise BadRequest(f"this run is a cvae: pass label=<class id 0..{num_classes - 1}>")
    value = _integer(text, "label")
    if not 0 <= value < num_classes:
        raise BadRequest(f"label {value} is not a class of this run (0..{num_classes - 1})")
    return value


def index(text, count, what="index"):
    """``index=`` (or ``a=``, ``b=``): a test image's index, 0..count-1."""
    value = _integer(text, what)
    if not 0 <= value < count:
        raise BadRequest(f"{what}={value}, but the run has {count} test images (0..{count - 1})")
    return value


def steps(text, default=10):
    """``steps=``: images along an interpolation, 2..MAX_STEPS."""
    if text in (None, ""):
        return default
    value = _integer(text, "steps")
    if value > MAX_STEPS:
        raise BadRequest(f"steps={value}; at most {MAX_STEPS} images per interpolation", status=413)
    if value < 2:
        raise BadRequest(f"steps={value}; an interpolation has at least 2 images")
    return value
