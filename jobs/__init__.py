"""rebook's running side: the command line now; the scheduler and web endpoint later."""
