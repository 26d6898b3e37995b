"""Events out: the durable outbox in the session store, Standard Webhooks signing, the SSRF guard,
webhook endpoints, and the deliverer that sends webhooks and the edX review results."""
