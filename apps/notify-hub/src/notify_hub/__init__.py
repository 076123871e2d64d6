"""notify-hub: exactly-once emails from at-least-once events."""
