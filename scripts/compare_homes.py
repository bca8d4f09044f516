"""Compare every DuckDB table and every training vectors file (GMV_HOME/vectors) of two GMV_HOMEs, bit for bit (the
check behind a refactor that must not change a value).

    .venv/bin/python scripts/compare_homes.py HOME_A HOME_B

Columns that hold paths (uri, params_file) differ by home and are left out; rows are compared in sorted order.
`gmv_content_versions` is left out too: a version hashes every column, paths included.
Exits 1 when a table differs.
"""

import sys
from pathlib import Path

import duckdb
import numpy as np

same = True
a, b = sys.argv[1], sys.argv[2]
ca = duckdb.connect(f"{a}/gmv.duckdb", read_only=True)
cb = duckdb.connect(f"{b}/gmv.duckdb", read_only=True)
ta = sorted(r[0] for r in ca.execute("select table_name from information_schema.tables").fetchall())
tb = sorted(r[0] for r in cb.execute("select table_name from information_schema.tables").fetchall())
print("tables equal:", ta == tb, ta)
for t in [t for t in ta if t != "gmv_content_versions"]:
    cols = [r[0] for r in ca.execute(f"describe {t}").fetchall()]
    drop = {"uri", "params_file"}
    keep = [c for c in cols if c not in drop]
    sel = ", ".join(keep)
    x = ca.execute(f"select {sel} from {t} order by all").pl()
    y = cb.execute(f"select {sel} from {t} order by all").pl()
    same = x.equals(y) and same
    print(
        f"{t}: rows {x.height} / {y.height}, schema equal {dict(x.schema) == dict(y.schema)}, "
        f"equal bit for bit: {x.equals(y)}",
        "(uri, params_file paths differ by home: not compared)" if set(cols) & drop else "",
    )
va = sorted(p.name for p in Path(a, "vectors").glob("*.npy"))
vb = sorted(p.name for p in Path(b, "vectors").glob("*.npy"))
print("vector files equal by name:", va == vb, va)
for name in sorted(set(va) & set(vb)):
    equal = np.array_equal(np.load(Path(a, "vectors", name)), np.load(Path(b, "vectors", name)))
    same = equal and same
    print(f"vectors/{name}: equal bit for bit: {equal}")
sys.exit(0 if same and ta == tb and va == vb else 1)
