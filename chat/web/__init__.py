"""Front doors: the wire formats the app speaks, each translated into engine calls and back."""
