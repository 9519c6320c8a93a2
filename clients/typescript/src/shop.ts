// A customer's way through the shop, typed only by what openapi-typescript generated from
// openapi/*.json: sign in, find an item, order it, pay, follow the order. It is compiled, not
// run (scripts/check-ts-client.sh): renaming or retyping a field a client relies on fails here.
import type { components as Auth, paths as AuthPaths } from "./generated/auth";
import type { components as Catalog, paths as CatalogPaths } from "./generated/catalog-order";

type Json<P, M extends keyof P> = P[M] extends {
  responses: { 200: { content: { "application/json": infer T } } };
}
  ? T
  : P[M] extends { responses: { 201: { content: { "application/json": infer T } } } }
    ? T
    : never;

type TokenPair = Json<AuthPaths["/v1/auth/login"], "post">;
type Me = Json<AuthPaths["/v1/auth/me"], "get">;
type ItemPage = Json<CatalogPaths["/v1/items"], "get">;
type Order = Catalog["schemas"]["OrderDto"];
type Payment = Json<CatalogPaths["/v1/orders/{id}/payment"], "post">;
type Problem = Catalog["schemas"]["Problem"];

async function call<T>(base: string, path: string, init: RequestInit, token?: string): Promise<T> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
  const r = await fetch(base + path, { ...init, headers });
  if (!r.ok) {
    const problem = (await r.json()) as Problem;
    throw new Error(`${r.status} ${problem.title}: ${problem.detail ?? ""}`);
  }
  return (await r.json()) as T;
}

export async function buyAndPay(auth: string, catalog: string, email: string, password: string) {
  const credentials: Auth["schemas"]["Credentials"] = { email, password };
  const pair = await call<TokenPair>(auth, "/v1/auth/login", {
    method: "POST",
    body: JSON.stringify(credentials),
  });
  const token: string = pair.access_token;
  const me = await call<Me>(auth, "/v1/auth/me", { method: "GET" }, token);
  const verified: boolean = me.email_verified;

  const page = await call<ItemPage>(catalog, "/v1/items?in_stock=true&limit=1", { method: "GET" });
  const item = page.items[0];
  if (item === undefined) throw new Error("nothing in stock");
  const priceCents: number = item.price_cents;

  const order: Catalog["schemas"]["NewOrder"] = { lines: [{ item_id: item.id, quantity: 1 }] };
  const placed = await call<Order>(catalog, "/v1/orders", {
    method: "POST",
    body: JSON.stringify(order),
  }, token);

  const request: Catalog["schemas"]["NewPayment"] = { test_outcome: "succeed" };
  const payment = await call<Payment>(catalog, `/v1/orders/${placed.id}/payment`, {
    method: "POST",
    body: JSON.stringify(request),
  }, token);
  const status: Catalog["schemas"]["PaymentStatus"] = payment.status;
  const secret: string = payment.client_secret;

  const now = await call<Order>(catalog, `/v1/orders/${placed.id}`, { method: "GET" }, token);
  const paid: boolean = now.status === "paid" && now.payment?.status === "succeeded";
  return { verified, priceCents, total: placed.total_cents, currency: placed.currency, status, secret, paid };
}
