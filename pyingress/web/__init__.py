"""The dashboard on the HTTP listener (standalone mode): ingresses with their live state, create/enable/delete, the
running sessions' figures, and a preview player that joins the room with livekit-client served from here."""
