"""``ibhost.client``: the gateway's Python client, as the daemon's package has always
offered it. The code lives in ``ibhost_client`` (clients/python), a distribution of its
own that a container installs without the daemon's dependencies."""

from __future__ import annotations

import ibhost_client as _client
from ibhost_client import *  # noqa: F403

# the module's private helpers too, for code that reached them as ibhost.client._x
globals().update({k: v for k, v in vars(_client).items()
                  if not (k.startswith("__") and k.endswith("__"))})
