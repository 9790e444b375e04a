"""Live streams to containers: Server-Sent Events and WebSocket, fanned out here.

The gateway keeps one stream channel open to the connector (``GET /stream`` on
connector.sock) and holds there one subscription per stream key while at least one
consumer wants it. Each consumer has its own bounded queue: quotes and partial bars
conflate (the latest per stream wins, counted), complete bars, status and order
events are never dropped; a consumer that falls ``streams.consumer_queue`` events
behind is closed with the reason. Events are relayed as the connector encoded them.

Order events carry the journal's sequence number: SSE sends it as the event id, so
a consumer that comes back with ``Last-Event-ID`` (or ``since``) gets what it missed,
from the connector's journal, even after this gateway was killed.
"""
