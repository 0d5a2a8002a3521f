"""Training health (issue 18): signals computed during training (``signals.py``: D's accuracy
and ADA's r_t, gradient and weight norms, sample diversity and class coverage), the rules that
turn their history into diagnoses, the monitor that acts on them, and ``gantrain-doctor``.

Importing the package imports nothing: the models import ``signals`` alone, which must not
pull in the monitor (that one sits above the engine)."""
