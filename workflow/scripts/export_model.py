#!/usr/bin/env python3
"""Export a trained model: TorchScript, ONNX and a self-contained bundle, checked on real audio.

    python workflow/scripts/export_model.py exp/fsdd_blstm/am/final.pt exp/fsdd_blstm/export \
        --audio data/fsdd/dev/wav.scp --max-utts 8

Writes <out>/model.ts, <out>/model.onnx, <out>/bundle/ (manifest.json, model.pt,
tokenizer.model, tokens.txt, cmvn.json) and <out>/verification.json, the largest
difference between each export's log-probabilities and the PyTorch model's on
the first --max-utts utterances of the audio. The same program is installed as
`asr-export`; the code is speechrecipe.cli.export.
"""

import sys

from speechrecipe.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
