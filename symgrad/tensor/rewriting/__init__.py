"""The tensor rewrites, grouped by the ops they concern; importing this package registers them.

- :mod:`.math`: arithmetic identities, constant collection, stable and fast forms;
- :mod:`.elemwise`: fill/second removal, DimShuffle merging;
- :mod:`.shape`: shape arithmetic, Alloc/Reshape/SpecifyShape removal, SumTo;
- :mod:`.reduction`: sums of fills, log-sum-exp, sum(x*y) -> dot;
- :mod:`.linalg`: dot chains in their cheapest order;
- :mod:`.fusion` and :mod:`.inplace`: the whole-graph passes;
- :mod:`.stencil`: increments into shifted slices as one op (the numba backend's).
"""

from symgrad.tensor.rewriting import elemwise, math  # noqa: F401
from symgrad.tensor.rewriting import shape, reduction, linalg, subtensor  # noqa: F401
from symgrad.tensor.rewriting import fusion, inplace, stencil  # noqa: F401
