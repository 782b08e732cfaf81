"""Evaluation of a trained generator (or of the recognizer alone) on held-out lines, free of Kedro and MLflow.

- :mod:`.scoring`: one row per line, readings and per-line CER/WER against the ground truth, PSNR/SSIM against
  the clean image, for the degraded input, the restored output and the clean line.
- :mod:`.aggregates`: the summary, computed only from that table: corpus-level CER/WER (total edits / total
  reference length), per-line means, image means, gains with paired bootstrap intervals, the CER gap closed.
- :mod:`.report`: figures (distributions, failure gallery) and the markdown report.
"""
