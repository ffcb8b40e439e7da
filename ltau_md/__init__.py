"""ltau-md: LTAU per-atom uncertainty for machine-learned interatomic potentials.

The science core (error logs, p-values, latent index, artifact, statistical cutoffs, calibration)
needs only numpy, scipy, faiss and matplotlib; the NequIP parts import torch lazily.
"""

__version__ = "0.1.0"

from ltau_md.errors import LtauError

__all__ = ["LtauError", "__version__"]
