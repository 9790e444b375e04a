"""Live streams: one IB subscription per (contract, kind, parameters), however many
consumers, published once on the stream channel of connector.sock.

- A *channel* is one long ``GET /stream`` answer (NDJSON); the gateway holds one and
  fans out to its consumers. Every update is encoded once and queued to each channel
  (normally exactly one): no per-consumer work here.
- A *hold* is a channel's claim on a subscription (``POST /streams``). The last hold
  released (or its channel gone) cancels the subscription at IB after ``linger``
  seconds, so a consumer that reconnects at once finds it still running.
- Market-data lines are budgeted: a quote stream costs one line, and
  ``snapshot_lines`` stay free for snapshots; a stream past the budget is refused
  with ``line_budget`` (429), so IB's error 101 never happens.
- After a reconnect, 1101 or a data farm's recovery every live subscription is
  re-requested; consumers see ``stale`` when data stops and ``resumed`` (with the
  gap) when it flows again. A stream silent for ``stale_after`` seconds while its
  market is open is marked stale and re-requested.
- Live-updating bars resume after a reconnect from the last complete bar sent: no
  duplicate and no missing bar at the seam.
- Order events (status, execution, commission) are journalled with a sequence
  number before they are sent; after every connect the connector reconciles with
  IB's executions and publishes what happened while it was away, exactly once.
"""
