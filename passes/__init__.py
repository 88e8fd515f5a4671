"""milguard rule library."""
