// understudy: reactor
//
// ledger — an AssemblyScript reactor keeping accounts and a transfer journal
// as garbage-collected objects (Map, Array, classes) in its heap.
//
// Exports: memory, _initialize (runs the module's top-level code; call it
// first), us_request_buffer, handle. Imports: env.abort only (AssemblyScript's
// abort, provided by understudy).
// `handle` takes one text command per request (a trailing "\n" or "\r\n" is
// ignored; words are separated by one space):
//
//   OPEN <name> <amount>       -> OK | ERR exists
//   XFER <from> <to> <amount>  -> OK | ERR no such account | ERR insufficient funds
//   BAL <name>                 -> <balance> | NOT_FOUND
//   SUM                        -> <total of all balances> (transfers keep it)
//   COUNT                      -> <accounts>
//   DIGEST                     -> <16 hex digits>: order-independent digest of
//                                 every (name, balance)
//   STATS                      -> accounts=<n> transfers=<journal length>
//   FILL <accounts> <transfers> -> OK: opens <accounts> accounts "acct:<i>"
//                                 with 1000 each (i continues across FILLs),
//                                 then makes <transfers> deterministic
//                                 transfers between FILL accounts
//
// Amounts are decimal integers, 1..AMOUNT_MAX (OPEN also allows 0). Errors
// answer "ERR <reason>". Answers are a pure function of the requests since
// _initialize.

export { us_request_buffer } from "../sdk/as/understudy";
import { requestText, respond } from "../sdk/as/understudy";
import { fmix64, hex64 } from "./lib/hash";

const AMOUNT_MAX: i64 = 1_000_000_000_000_000; // 10^15
// Total money in the ledger stays below this, so sums never overflow i64.
const TOTAL_MAX: i64 = 1_000_000_000_000_000_000; // 10^18
const NAME_CHARS_MAX = 64;
// FILL accounts over the guest's life, and transfers per FILL.
const FILL_ACCOUNTS_MAX: i64 = 1_000_000;
const FILL_TRANSFERS_MAX: i64 = 10_000_000;
const FILL_BALANCE: i64 = 1000;
const FILL_AMOUNT_MAX: u64 = 100;

class Account {
  constructor(public name: string, public balance: i64) {}
}

class Transfer {
  constructor(public from: Account, public to: Account, public amount: i64) {}
}

const accounts = new Map<string, Account>();
const journal = new Array<Transfer>();
const fillAccounts = new Array<Account>();
let fillNext: i64 = 0;
let total: i64 = 0;
let fillRng: u64 = 0x9e3779b97f4a7c15;

function nextRandom(): u64 {
  let x = fillRng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  fillRng = x;
  return x * 0x2545f4914f6cdd1d;
}

// Strict decimal in [min, max]; -1 if not one.
function parseAmount(s: string, min: i64, max: i64): i64 {
  if (s.length == 0 || s.length > 19) return -1;
  let v: i64 = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + <i64>(c - 0x30);
  }
  return v < min || v > max ? -1 : v;
}

function validName(name: string): bool {
  return name.length > 0 && name.length <= NAME_CHARS_MAX;
}

function open(name: string, amount: i64): string {
  if (accounts.has(name)) return "ERR exists";
  if (amount > TOTAL_MAX - total) return "ERR total supply limit";
  accounts.set(name, new Account(name, amount));
  total += amount;
  return "OK";
}

function transfer(from: Account, to: Account, amount: i64): bool {
  if (from.balance < amount) return false;
  from.balance -= amount;
  to.balance += amount;
  journal.push(new Transfer(from, to, amount));
  return true;
}

function digest(): u64 {
  let d: u64 = 0;
  const all = accounts.values();
  for (let i = 0; i < all.length; i++) {
    const a = all[i];
    let h: u64 = 0xcbf29ce484222325;
    for (let j = 0; j < a.name.length; j++) h = (h ^ <u64>a.name.charCodeAt(j)) * 0x100000001b3;
    d += fmix64(h ^ (<u64>a.balance * 0x9e3779b97f4a7c15));
  }
  return d;
}

function fill(count: i64, transfers: i64): string {
  if (fillNext + count > FILL_ACCOUNTS_MAX) return "ERR FILL accounts limit";
  if (count * FILL_BALANCE > TOTAL_MAX - total) return "ERR total supply limit";
  for (let i: i64 = 0; i < count; i++) {
    const name = "acct:" + (fillNext++).toString();
    if (accounts.has(name)) continue; // taken by an OPEN; the FILL index moves on
    const account = new Account(name, FILL_BALANCE);
    accounts.set(name, account);
    fillAccounts.push(account);
    total += FILL_BALANCE;
  }
  const n = <u64>fillAccounts.length;
  if (n < 2) return "OK";
  for (let i: i64 = 0; i < transfers; i++) {
    const from = fillAccounts[<i32>(nextRandom() % n)];
    const to = fillAccounts[<i32>(nextRandom() % n)];
    const amount = <i64>(1 + nextRandom() % FILL_AMOUNT_MAX);
    if (from !== to) transfer(from, to, amount);
  }
  return "OK";
}

function execute(text: string): string {
  if (text.endsWith("\n")) text = text.slice(0, text.length - 1);
  if (text.endsWith("\r")) text = text.slice(0, text.length - 1);
  const w = text.split(" ");
  const cmd = w[0];
  if (cmd == "OPEN") {
    if (w.length != 3 || !validName(w[1])) return "ERR usage: OPEN <name> <amount>";
    const amount = parseAmount(w[2], 0, AMOUNT_MAX);
    if (amount < 0) return "ERR usage: OPEN <name> <amount>";
    return open(w[1], amount);
  }
  if (cmd == "XFER") {
    if (w.length != 4) return "ERR usage: XFER <from> <to> <amount>";
    const amount = parseAmount(w[3], 1, AMOUNT_MAX);
    if (amount < 0) return "ERR usage: XFER <from> <to> <amount>";
    if (!accounts.has(w[1]) || !accounts.has(w[2])) return "ERR no such account";
    if (w[1] == w[2]) return "ERR same account";
    return transfer(accounts.get(w[1]), accounts.get(w[2]), amount) ? "OK" : "ERR insufficient funds";
  }
  if (cmd == "BAL") {
    if (w.length != 2) return "ERR usage: BAL <name>";
    return accounts.has(w[1]) ? accounts.get(w[1]).balance.toString() : "NOT_FOUND";
  }
  if (w.length == 1 && cmd == "SUM") return total.toString();
  if (w.length == 1 && cmd == "COUNT") return accounts.size.toString();
  if (w.length == 1 && cmd == "DIGEST") return hex64(digest());
  if (w.length == 1 && cmd == "STATS") {
    return "accounts=" + accounts.size.toString() + " transfers=" + journal.length.toString();
  }
  if (cmd == "FILL") {
    const usage = "ERR usage: FILL <accounts 0..1000000> <transfers 0..10000000>";
    if (w.length != 3) return usage;
    const count = parseAmount(w[1], 0, FILL_ACCOUNTS_MAX);
    const transfers = parseAmount(w[2], 0, FILL_TRANSFERS_MAX);
    if (count < 0 || transfers < 0) return usage;
    return fill(count, transfers);
  }
  return "ERR unknown command";
}

export function handle(len: i32): i64 {
  const text = requestText(len);
  if (text === null) return respond("ERR request length");
  return respond(execute(text));
}
