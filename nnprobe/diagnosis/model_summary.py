"""K from a logged model summary: the output size of the model's last Linear/Dense layer, as a training log
shows it. Three printed forms are read:

- torch's `print(model)`: `Linear(in_features=32, out_features=10, bias=True)`;
- Keras' `model.summary()` (Keras 2 and 3 tables): `dense_1 (Dense) │ (None, 10) │ 330`;
- Lightning's `ModelSummary` when the module has an example input (its `Out sizes` column):
  `2 | net.2 | Linear | 330 | train | [1, 32] | [1, 10]`.

The last such layer in the text is taken (a classifier's head comes last in all three); the caller decides
whether the number is a plausible K (readers.class_count). HF's `config.json` (`id2label`) and the config
files are read elsewhere."""
from __future__ import annotations

import re

_TORCH = re.compile(r"\bLinear\(in_features=\d+, out_features=(\d+)")
_KERAS = re.compile(r"\((?:Dense|EinsumDense)\)\s*[│|]?\s*\((?:None|\d+)(?:,\s*(?:None|\d+))*,\s*(\d+)\)")
_LIGHTNING = re.compile(r"\|\s*Linear\s*\|.*\[(?:\d+,\s*)*(\d+)\]\s*\|?\s*$", re.M)
FORMS = (("torch print(model): last Linear out_features", _TORCH),
         ("Keras model.summary(): last Dense output shape", _KERAS),
         ("Lightning ModelSummary: last Linear out size", _LIGHTNING))


def output_size(text: str) -> tuple[int, str] | None:
    """(output size, how it was read) of the last Linear/Dense layer a summary in `text` shows, else None."""
    found = [(match.end(), int(match.group(1)), how) for how, pattern in FORMS for match in pattern.finditer(text)]
    if not found:
        return None
    _, size, how = max(found)
    return size, how
