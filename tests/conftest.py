"""Shared test setup.

SCIPY_ARRAY_API must be set before scipy is first imported so that scikit-learn's
``check_array_api_input`` runs (on numpy inputs) instead of being skipped.
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
