"""Session lifecycle: statuses and their transitions, where each session's risk state lives, the
one service that starts, ends and deletes sessions, and the reaper that ends idle ones."""
