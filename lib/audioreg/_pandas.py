"""pandas as audioreg uses it: every module of the package imports it from here, so its options
are set before audioreg makes a table, and ``import audioreg`` itself does not import pandas
(a command that needs no table, ``audioreg extract``, starts without it).

pandas 3 keeps text in pyarrow when pyarrow is installed (audioreg needs it for Parquet and for
reading large tables), and pyarrow strings cannot hold a path with bytes that are not UTF-8
(Python's surrogate escapes, as os.listdir returns them): a folder holding one such file name
would fail to load. Python storage holds every str; the dtype ("str") and its behaviour are the
same.
"""

import pandas as pd

pd.set_option("mode.string_storage", "python")

__all__ = ["pd"]
