// reviews, in three versions as bookinfo's: v1 shows no stars, v2 black stars and v3 red ones (both ask ratings).
import { env, getJson, peerOf, serve } from './http.mjs';

const version = env('VERSION');
const ratings = version === 'v1' ? undefined : env('RATINGS_URL');
serve(Number(env('PORT')), async (req) => {
  const out = { app: 'reviews', version, peer: peerOf(req), reviews: ['An extremely entertaining play.', 'Absolutely fun.'] };
  if (!ratings) return out;
  return { ...out, stars: version === 'v2' ? 'black' : 'red', calls: { ratings: await getJson(ratings) } };
});
