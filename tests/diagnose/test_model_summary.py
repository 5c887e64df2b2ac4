"""Issue 18 (1): K from a logged model summary (the last Linear/Dense layer's output size). The summaries
below are what torch 2.14, Keras 3.15 and Lightning 2.6 printed for a 64-32-10 MLP (pasted from real runs:
Keras and Lightning are not test dependencies); torch's is printed here. W&B's console and config records are
written by hand in protobuf's wire format (tracking_helpers)."""
from __future__ import annotations

import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.model_summary import output_size

KERAS = """Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 32)             │         2,080 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           330 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 2,410 (9.41 KB)
"""
LIGHTNING = """  | Name  | Type       | Params | Mode  | FLOPs | In sizes | Out sizes
----------------------------------------------------------------------------
0 | net   | Sequential | 2.4 K  | train | 4.7 K | [1, 64]  | [1, 10]  
1 | net.0 | Linear     | 2.1 K  | train | 4.1 K | [1, 64]  | [1, 32]  
2 | net.1 | ReLU       | 0      | train | 0     | [1, 32]  | [1, 32]  
3 | net.2 | Linear     | 330    | train | 640   | [1, 32]  | [1, 7]  
----------------------------------------------------------------------------
2.4 K     Trainable params
"""
LIGHTNING_NO_SIZES = """  | Name | Type       | Params | Mode 
--------------------------------------------
0 | net  | Sequential | 2.4 K  | train
"""


def torch_print(k: int) -> str:
    import torch

    return str(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, k)))


def test_the_last_linear_or_dense_layer_of_each_printed_form():
    assert output_size(torch_print(10)) == (10, "torch print(model): last Linear out_features")
    assert output_size(KERAS) == (10, "Keras model.summary(): last Dense output shape")
    assert output_size(LIGHTNING) == (7, "Lightning ModelSummary: last Linear out size")
    assert output_size(LIGHTNING_NO_SIZES) is None  # no example input: no sizes to read
    assert output_size("epoch 1 loss 2.30\nepoch 2 loss 1.90\n") is None
    # several summaries in one log: the last printed wins (a model rebuilt with another head)
    assert output_size(torch_print(10) + "\nfine-tuning\n" + torch_print(3))[0] == 3


def _wandb_run(tmp_path, console: list[str], config: dict | None = None):
    from tracking_helpers import config as config_record
    from tracking_helpers import console as console_record
    from tracking_helpers import frame, history

    bodies = [config_record({key: str(value) for key, value in config.items()})] if config else []
    bodies += [console_record(chunk) for chunk in console]
    for step in range(12):  # a net at chance for 10 classes, loss at ln 10
        bodies.append(history({"train/loss": 2.3026 + 0.001 * (step % 2), "val/acc": 0.1 + 0.004 * (step % 3),
                               "_step": step}, step))
    folder = tmp_path / "wandb" / "offline-run-20261206_000000-abc"
    folder.mkdir(parents=True)
    (folder / "run-abc.wandb").write_bytes(bytes(frame(bodies)))
    return tmp_path


def test_wandb_console_summary_gives_k_with_either_decoder(tmp_path):
    from nnprobe.diagnosis.readers import wandb as reader
    from tracking_helpers import console

    body = console("Linear(in_features=32, out_features=10, bias=True)\n")
    assert reader.decode_wire(body) == reader._decoder()(body) == \
        ("output", [("line", "Linear(in_features=32, out_features=10, bias=True)\n")], None)
    text = torch_print(10)
    run = _wandb_run(tmp_path / "torch", [text[:40], text[40:]])  # the console arrives in pieces
    (result,) = diagnose(run).runs
    assert result.num_classes == 10 and "model summary" in result.num_classes_source
    assert "last Linear out_features" in result.num_classes_source


@pytest.mark.parametrize("config, k", [({"num_classes": 4}, 4), ({}, 10)])
def test_a_stated_k_wins_over_the_summary(tmp_path, config, k):
    (result,) = diagnose(_wandb_run(tmp_path, [KERAS], config)).runs
    assert result.num_classes == k
    assert ("W&B config" in result.num_classes_source) == bool(config)


def test_a_regression_head_gives_no_k(tmp_path):
    (result,) = diagnose(_wandb_run(tmp_path, [torch_print(1)])).runs
    assert "model summary" not in (result.num_classes_source or "")
