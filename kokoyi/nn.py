"""`kokoyi.nn`: see kokoyi.runtime.nn."""
from kokoyi.runtime.nn import *  # noqa: F401,F403
from kokoyi.runtime.nn import __all__  # noqa: F401
