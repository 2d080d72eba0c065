// The storefront's HTML pages: the shop (products, stock, the order form and "Often bought
// together") and the order receipt. Rendered on the server so the page works before its script runs.
import { formatEuro } from "./catalog.js";
import type { CatalogProduct } from "./catalog.js";
import { html, SafeHtml } from "./html.js";
import { PRODUCTS } from "./products.js";
import type { BoughtTogether } from "./recommendations.js";

export interface OrderView {
  id: string;
  status: string;
  items: { sku: string; qty: number; price?: number }[];
  total?: number;
  cardLast4?: string;
  reason?: string;
  createdAt: string;
}

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 2px solid #6b4226; margin-bottom: 1rem; }
  h1 { color: #6b4226; margin: 0; }
  h1 a { color: inherit; text-decoration: none; }
  table { width: 100%; border-collapse: collapse; }
  td, th { padding: .5rem; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
  td.num, th.num { text-align: right; white-space: nowrap; }
  .desc { color: #666; font-size: .9rem; }
  .sold-out { color: #a00; }
  input[type=number] { width: 4rem; }
  fieldset { border: 1px solid #ddd; margin-top: 1rem; }
  label { display: block; margin: .5rem 0; }
  .hint { color: #666; font-size: .85rem; }
  .notice { background: #fff4e5; border: 1px solid #f0c36d; padding: .75rem; }
  .together { border-top: 1px solid #eee; margin-top: 1.5rem; }
  #result.ok, .status-confirmed { color: #1b6e1b; }
  #result.error, .status-rejected, .status-failed { color: #a00; }
  button { font-size: 1rem; padding: .5rem 1.5rem; }
`;

// Runs in the browser. It builds the result with textContent only, so nothing from an
// answer is ever parsed as HTML.
const SCRIPT = `
const form = document.getElementById("order");
const result = document.getElementById("result");
const euro = (cents) => "€" + (cents / 100).toFixed(2);
const stockText = (n) => (n > 0 ? n + " left" : "Sold out");
function show(text, kind) { result.textContent = text; result.className = kind; }
async function refreshStock() {
  try {
    const res = await fetch("/api/catalog");
    if (!res.ok) return;
    const { products } = await res.json();
    for (const p of products) {
      const cell = document.querySelector('[data-stock="' + CSS.escape(p.sku) + '"]');
      if (cell) cell.textContent = stockText(p.stock);
      const input = document.querySelector('input[data-sku="' + CSS.escape(p.sku) + '"]');
      if (input) { input.max = String(Math.min(p.stock, 99)); input.disabled = p.stock === 0; }
    }
  } catch {}
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const items = [...form.querySelectorAll("input[data-sku]")]
    .map((i) => ({ sku: i.dataset.sku, qty: Number(i.value) }))
    .filter((l) => l.qty > 0);
  if (items.length === 0) return show("Choose at least one product.", "error");
  const button = form.querySelector("button");
  button.disabled = true;
  show("Placing your order…", "");
  try {
    const res = await fetch("/checkout", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ items, email: form.elements.email.value, card: form.elements.card.value }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 201) {
      const link = document.createElement("a");
      link.href = "/orders/" + encodeURIComponent(body.id);
      link.textContent = body.id;
      result.replaceChildren("Order ", link, " confirmed: " + euro(body.total) + " charged to the card ending " + body.cardLast4 + ".");
      result.className = "ok";
      for (const input of form.querySelectorAll("input[data-sku]")) input.value = "0";
    } else {
      show((body.error && body.error.message) || "The order failed (HTTP " + res.status + ").", "error");
    }
  } catch {
    show("The shop could not be reached. Please try again.", "error");
  } finally {
    button.disabled = false;
    refreshStock();
  }
});
`;

// STYLE and SCRIPT are our own constants, so they go in as they are (new SafeHtml).
function layout(options: { shopName: string; title: string; nonce: string; body: SafeHtml; script?: string }): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title}</title>
<style nonce="${options.nonce}">${new SafeHtml(STYLE)}</style>
</head>
<body>
<header><h1><a href="/">${options.shopName}</a></h1><span class="hint">a Keelson example</span></header>
${options.body}
${options.script === undefined ? "" : html`<script nonce="${options.nonce}">${new SafeHtml(options.script)}</script>`}
</body>
</html>`.value;
}

export function shopPage(options: {
  shopName: string;
  nonce: string;
  products: CatalogProduct[] | undefined;
  checkout?: "classic" | "express";
  /** Left out when recommendations did not answer in time. */
  together?: BoughtTogether | undefined;
}): string {
  const { products, together } = options;
  const express = options.checkout === "express";
  const body =
    products === undefined
      ? html`<p class="notice" role="alert">Prices and stock are unavailable right now, so orders are paused. Please try again in a moment.</p>
<ul>${Object.values(PRODUCTS).map((p) => html`<li>${p.name}</li>`)}</ul>`
      : html`<form id="order">
<table>
<thead><tr><th>Product</th><th class="num">Price</th><th class="num">Stock</th><th class="num">Qty</th></tr></thead>
<tbody>
${products.map(
  (p) => html`<tr>
<td><strong>${p.name}</strong><div class="desc">${p.description}</div></td>
<td class="num">${formatEuro(p.price)}</td>
<td class="num${p.inStock ? "" : " sold-out"}" data-stock="${p.sku}">${p.inStock ? `${p.stock} left` : "Sold out"}</td>
<td class="num"><input type="number" name="qty-${p.sku}" data-sku="${p.sku}" min="0" max="${Math.min(p.stock, 99)}" value="${express && p.inStock && p === products.find((x) => x.inStock) ? "1" : "0"}"${p.inStock ? "" : html` disabled`} aria-label="Quantity of ${p.name}"></td>
</tr>`,
)}
</tbody>
</table>
<fieldset data-checkout="${express ? "express" : "classic"}">
<legend>${express ? "Express checkout" : "Checkout"}</legend>
<label>Email <input type="email" name="email" required autocomplete="email" placeholder="you@example.com"></label>
<label>Card number <input name="card" required inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242"></label>
<p class="hint">This is a demo shop: any 12 to 19 digit number is accepted, and cards ending in 0000 are declined.</p>
<button type="submit">${express ? "Buy now" : "Place order"}</button>
</fieldset>
</form>
<p id="result" role="status"></p>`;
  return layout({
    shopName: options.shopName,
    title: options.shopName,
    nonce: options.nonce,
    body: together === undefined ? body : html`${body}
${boughtTogetherBlock(together)}`,
    ...(products ? { script: SCRIPT } : {}),
  });
}

function boughtTogetherBlock(together: BoughtTogether): SafeHtml {
  return html`<section class="together" data-together="${together.sku}">
<h2>Often bought together</h2>
<p class="hint">With ${together.name}:</p>
<ul>${together.items.map((i) => html`<li data-recommended="${i.sku}">${i.name} <span class="hint">(in ${Math.round(i.score * 100)}% of its orders)</span></li>`)}</ul>
</section>`;
}

export function orderPage(options: { shopName: string; nonce: string; order: OrderView }): string {
  const { order } = options;
  const body = html`<h2>Order ${order.id}</h2>
<p>Status: <strong class="status-${order.status}">${order.status}</strong>${order.reason ? html` (${order.reason})` : ""}</p>
<table>
<thead><tr><th>Product</th><th class="num">Qty</th><th class="num">Price</th></tr></thead>
<tbody>
${order.items.map(
  (l) => html`<tr><td>${PRODUCTS[l.sku]?.name ?? l.sku}</td><td class="num">${l.qty}</td><td class="num">${l.price === undefined ? "" : formatEuro(l.price)}</td></tr>`,
)}
</tbody>
${order.total === undefined ? "" : html`<tfoot><tr><th colspan="2">Total</th><th class="num">${formatEuro(order.total)}</th></tr></tfoot>`}
</table>
<p class="hint">Placed ${order.createdAt}${order.cardLast4 ? html`, card ending ${order.cardLast4}` : ""}.</p>
<p><a href="/">Back to the shop</a></p>`;
  return layout({ shopName: options.shopName, title: `Order ${order.id}`, nonce: options.nonce, body });
}

export function messagePage(options: { shopName: string; nonce: string; title: string; message: string }): string {
  return layout({ ...options, body: html`<h2>${options.title}</h2><p>${options.message}</p><p><a href="/">Back to the shop</a></p>` });
}
