"""What comes back to the bounce address: DSNs, ARF complaints, auto-replies, unsubscribes."""
