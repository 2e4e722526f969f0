// Bridges the black-box tests to Stripe's official Node library (npm `stripe`):
//   node test/stripe_compat.mjs sign   '{"payload":"...","secret":"...","timestamp":123}'
//     prints the Stripe-Signature header the library generates;
//   node test/stripe_compat.mjs verify '{"payload":"...","header":"...","secret":"...","tolerance":300}'
//     prints "ok", or exits 1 with the library's error message.
import Stripe from 'stripe';

const stripe = new Stripe('sk_test_compat_only');
const [mode, json] = process.argv.slice(2);
const input = JSON.parse(json);

if (mode === 'sign') {
  process.stdout.write(
    stripe.webhooks.generateTestHeaderString({
      payload: input.payload,
      secret: input.secret,
      timestamp: input.timestamp,
    }),
  );
} else if (mode === 'verify') {
  try {
    stripe.webhooks.signature.verifyHeader(input.payload, input.header, input.secret, input.tolerance ?? 300);
    process.stdout.write('ok');
  } catch (e) {
    process.stdout.write(String(e.message));
    process.exit(1);
  }
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
