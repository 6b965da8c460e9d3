"""The project's shared vocabularies: the lesion label map (and, beside it, the data dictionary).

Leftmost in the data flow: every package may import it, it imports none of them. It holds names,
codes and definitions only, no computation.
"""
