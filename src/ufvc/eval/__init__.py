"""Evaluation: rate-distortion results, test sets, conventional anchors, BD-rate and plots.

`results` defines the row schema every evaluation writes (anchors and the neural codec alike),
`testsets` turns a test-set description into sequences, `anchors` measures x264, x265, SVT-AV1
and VVC through PyAV, `bdrate` compares result files and `plots` draws RD curves.
"""
