"""Every verb's options as frozen, typed dataclasses, each field parsed once, torch-free.

    model.py        --model, --weights, --arch, preprocessing          (ModelOptions)
    data.py         DATA/--data, --labels, --devkit, --class-map, --limit (DataOptions)
    run.py          --device spelling, --precision, --threads, --batch-size, --workers, --shard
    budget.py       budgets as people write them (2/255, 0,1/255), robust gates EPS=F
    parts.py        --shard K/N
    attack.py       --attack, --eps, --steps ..., fool's own
    corruptions.py  --corruptions / --severity spelling (ImageNet-C names)
    gates.py        eval floors, robust floors, comparison drop gates (0.3pt) and --baseline
    diagnose.py     diagnose, its --model probe, --follow
    merge.py        merge's parts and gates, compare's two inputs
    outputs.py      --format, -o, --save-predictions
    evaluate.py     eval's settings, each verb's --plot
    verbs.py        which groups each verb takes; `build` from keywords

`base.py` holds the machinery (`option`, `Options.parse`, `PathKind`). The CLI's click options are generated
from the fields (cli/options.py); the API's keywords are the fields' names (api.py).
"""
