"""Proctor as an Open edX REST proctoring provider: the API edx-proctoring's
`BaseRestProctoringProvider` calls (served under /edx), and the review results sent back to the
LMS through the outbox."""
