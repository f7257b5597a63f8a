"""What comes back: bounces, complaints and mailed unsubscribes, read, classified and acted on."""
