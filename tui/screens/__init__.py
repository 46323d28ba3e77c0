"""The console's screens: dashboard, shipments, shipment detail, events, help and the modals."""
