// details: a leaf service answering with a book's details.
import { env, peerOf, serve } from './http.mjs';

serve(Number(env('PORT')), (req) => ({
  app: 'details',
  peer: peerOf(req),
  book: { title: 'The Comedy of Errors', author: 'William Shakespeare', pages: 200 },
}));
