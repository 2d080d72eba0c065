// What the storefront says about each product. Prices and stock belong to inventory; the
// storefront owns only the words, and sells only what both of them know.

export interface ProductCopy {
  name: string;
  description: string;
}

export const PRODUCTS: Readonly<Record<string, ProductCopy>> = {
  "BEAN-ETH-250": { name: "Ethiopia Yirgacheffe, 250 g", description: "Washed, light roast: jasmine, lemon, black tea." },
  "BEAN-COL-250": { name: "Colombia Huila, 250 g", description: "Medium roast: red apple, caramel, cocoa." },
  "BEAN-DEC-250": { name: "Swiss Water Decaf, 250 g", description: "All of the chocolate, none of the caffeine." },
  "FILTER-V60-100": { name: "V60 paper filters, 100", description: "Size 02, oxygen-bleached." },
  "MUG-ENAMEL": { name: "Enamel camp mug", description: "350 ml, white with a blue rim." },
  "GRINDER-HAND": { name: "Hand grinder", description: "Steel conical burrs, 40 steps of adjustment." },
};
