"""Review queue models arrive with the supervision issue; the app exists so its seams are in place."""
