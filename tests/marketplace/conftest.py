from tests.marketplace.helpers import _clear_throttles  # noqa: F401 (autouse fixture)
