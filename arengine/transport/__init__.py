"""WebRTC transport: WHIP ingest, WHEP egress and the shared per-room encoders."""
