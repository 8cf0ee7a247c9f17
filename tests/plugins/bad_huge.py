"""Returns a huge object: a 40 MB array where a few hundred bytes are expected."""
import numpy as np

from bad_common import Broken

IMPL = Broken("bad-huge", lambda s, p, X, Y, c, g: (c, g + [(np.zeros((5000, 1000)), np.zeros(1000))]))
