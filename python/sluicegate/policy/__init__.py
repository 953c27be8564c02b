"""The request pipeline and its policies: authentication now; spend and redaction plug in here."""
