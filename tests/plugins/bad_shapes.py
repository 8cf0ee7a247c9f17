"""Wrong shapes, layer counts and types."""
import numpy as np

from bad_common import Broken

TRANSPOSED = Broken("bad-transposed", lambda s, p, X, Y, c, g: (c, [(gW.T, gb) for gW, gb in g]))
MISSING_LAYER = Broken("bad-layers", lambda s, p, X, Y, c, g: (c, g[:-1]))
LISTS = Broken("bad-lists", lambda s, p, X, Y, c, g: (c, [(gW.tolist(), gb.tolist()) for gW, gb in g]))
FLOAT32 = Broken("bad-float32", lambda s, p, X, Y, c, g: (c, [(gW.astype(np.float32), gb.astype(np.float32))
                                                            for gW, gb in g]))
COST_VECTOR = Broken("bad-cost-vector", lambda s, p, X, Y, c, g: (np.full(X.shape[0], c), g))
NOT_A_PAIR = Broken("bad-not-a-pair", lambda s, p, X, Y, c, g: g)
