"""Read models (projections) rebuilt from the event log.

One module per read model, each a pure per-case fold plus its tables and queries:
case_list, response_times, distortion, board, indicators (projections.registry
lists them and keeps them live); similarity is the text measure distortion uses.
"""
