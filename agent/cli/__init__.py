"""The `mediavault` operator CLI: thin typer commands over the library's functions."""
