"""Human review of ended sessions: a reviewer confirms or dismisses each automatic event, adds
events the models missed, and gives the session an outcome. The automatic verdict never changes."""
