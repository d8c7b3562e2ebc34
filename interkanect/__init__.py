"""interKanect: paid one-to-one live video calls. This package holds what every process
shares: settings, the database connection, mail, process supervision and the CLI."""
