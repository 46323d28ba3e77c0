"""The console's own widgets: dashboard panels, the connection banner and the lazy shipments list."""
