"""Customer replies: the draft request, the rendered reply and its validation."""
