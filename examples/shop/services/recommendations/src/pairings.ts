// What the (simulated) model store knows: for each of the shop's products, the products most
// often bought in the same order, with the share of those orders as the score. A fixed table,
// so answers are the same on every replica and in every test.

export interface Pairing {
  sku: string;
  /** Share of orders with the product that also had this one, 0 to 1; highest first. */
  score: number;
}

export const PAIRINGS: Readonly<Record<string, readonly Pairing[]>> = {
  "BEAN-ETH-250": [
    { sku: "FILTER-V60-100", score: 0.62 },
    { sku: "MUG-ENAMEL", score: 0.41 },
    { sku: "GRINDER-HAND", score: 0.27 },
    { sku: "BEAN-COL-250", score: 0.22 },
    { sku: "BEAN-DEC-250", score: 0.08 },
  ],
  "BEAN-COL-250": [
    { sku: "FILTER-V60-100", score: 0.58 },
    { sku: "BEAN-ETH-250", score: 0.31 },
    { sku: "MUG-ENAMEL", score: 0.29 },
    { sku: "GRINDER-HAND", score: 0.18 },
    { sku: "BEAN-DEC-250", score: 0.12 },
  ],
  "BEAN-DEC-250": [
    { sku: "BEAN-COL-250", score: 0.44 },
    { sku: "FILTER-V60-100", score: 0.39 },
    { sku: "MUG-ENAMEL", score: 0.21 },
    { sku: "BEAN-ETH-250", score: 0.1 },
  ],
  "FILTER-V60-100": [
    { sku: "BEAN-ETH-250", score: 0.55 },
    { sku: "BEAN-COL-250", score: 0.51 },
    { sku: "GRINDER-HAND", score: 0.19 },
    { sku: "BEAN-DEC-250", score: 0.17 },
    { sku: "MUG-ENAMEL", score: 0.09 },
  ],
  "MUG-ENAMEL": [
    { sku: "BEAN-COL-250", score: 0.36 },
    { sku: "BEAN-ETH-250", score: 0.33 },
    { sku: "FILTER-V60-100", score: 0.14 },
  ],
  "GRINDER-HAND": [
    { sku: "BEAN-ETH-250", score: 0.71 },
    { sku: "BEAN-COL-250", score: 0.64 },
    { sku: "FILTER-V60-100", score: 0.48 },
    { sku: "BEAN-DEC-250", score: 0.15 },
    { sku: "MUG-ENAMEL", score: 0.11 },
  ],
};
