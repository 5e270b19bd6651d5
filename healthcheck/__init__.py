"""healthcheck: what is wrong with this GPU container, and what changed."""

__version__ = "0.1.0"

# Before any module of ours defines a data class: their generated methods are compiled once
# and kept between runs (classcode.py), not compiled afresh at every start.
from healthcheck import classcode as _classcode

_classcode.install()
