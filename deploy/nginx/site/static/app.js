// Asks the API for the products, so a browser visit also logs an /api/ request.
fetch("/api/products").catch(() => {});
