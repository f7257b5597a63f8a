"""What comes back: bounces, complaints and mailed unsubscribes."""
