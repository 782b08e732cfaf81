"""Text for synthetic lines: a built-in multilingual corpus, or a user text file, cut into line-sized windows."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

TEXT_FILE_KEY = "data.sources[...].text_file"

BUILT_IN_CORPUS = """\
A stitch in time saves nine, and a word in time saves ninety.
Still waters run deep; the shallow brook makes all the noise.
The early bird catches the worm, but the second mouse gets the cheese.
Do not count your chickens before they are hatched.
On the 3rd of May, 1847, the ship "Hope" left the harbour at dawn.
Letters were sent twice a week: on Monday and on Thursday.
"Where are you going?" asked the miller. "To town, if the road is dry."
The ledger shows 12 barrels of flour, 7 of salt and 4 of oil.
Many hands make light work; too many cooks spoil the broth.
He wrote by candlelight until the ink froze in the well.
Rain before seven, fine before eleven - or so the farmers say.
Received with thanks the sum of 25 shillings (paid in full).
Every cloud has a silver lining, and every lane has a turning.
My dear sister, the winter has been long, but the children are well.
The garden wall fell down again after the storm of 14 November.
Better late than never, but better never late.
Please remember to bring the map, the lamp and the spare key!
A rolling stone gathers no moss; a sitting hen lays no eggs.
We walked 9 miles to the fair and 9 miles back again.
The clock in the square struck noon; nobody looked up.
It is a long road that has no turning.
Two heads are better than one, unless they are on the same fool.
The parish register lists 31 baptisms and 18 burials that year.
Honesty is the best policy, though not always the cheapest.
Note: the north field is to be sown with barley, not oats.
Whatever is worth doing at all is worth doing well.
Il ne faut pas vendre la peau de l'ours avant de l'avoir tué.
Petit à petit, l'oiseau fait son nid.
Qui vivra verra; qui dormira rêvera.
Le 12 août, nous sommes arrivés à Lyon vers cinq heures du soir.
« Où est passé le chat ? » demanda l'enfant, inquiet.
Ma chère cousine, votre lettre m'a fait grand plaisir.
Après la pluie, le beau temps ; après l'hiver, le printemps.
Il a reçu 40 francs pour la récolte des pommes.
L'habit ne fait pas le moine, mais il lui tient chaud.
Chose promise, chose due.
Les chiens aboient, la caravane passe.
Nous avons planté des fèves, des pois et trois rangs de laitue.
Il était une fois un meunier qui n'avait qu'un âne.
Mieux vaut tard que jamais ; mieux vaut jamais que mal.
Qui sème le vent récolte la tempête.
Le cœur a ses raisons que la raison ne connaît point.
Rendez-vous à la gare, quai n° 2, à huit heures précises.
Tout ce qui brille n'est pas or.
À cœur vaillant rien d'impossible.
La nuit porte conseil : dormez d'abord, décidez ensuite.
L'été fut très sec ; le puits du village était presque vide.
Les voyages forment la jeunesse et usent les souliers.
Morgenstund hat Gold im Mund.
Wer zuletzt lacht, lacht am besten.
Übung macht den Meister, auch wenn es lange dauert.
Am 5. März 1902 schneite es in Köln den ganzen Tag.
Liebe Mutter, das Wetter ist schön und das Essen ist gut.
Der Apfel fällt nicht weit vom Stamm.
Was du heute kannst besorgen, das verschiebe nicht auf morgen.
Die Brücke über den Fluss wurde 1871 gebaut.
Ein gutes Gewissen ist ein sanftes Ruhekissen.
Wir haben 16 Säcke Kartoffeln und 3 Fässer Äpfel geerntet.
Stille Wasser sind tief.
Ende gut, alles gut.
Der Lehrer schrieb: "Fleißig, aber zu schnell."
Wo ein Wille ist, ist auch ein Weg.
Die Straße nach Süden war nach dem Regen kaum befahrbar.
Aller Anfang ist schwer; das Ende meistens auch.
Viele Grüße an Onkel Jürgen und die ganze Familie!
Ohne Fleiß kein Preis.
Im Dorf gab es eine Schmiede, eine Mühle und zwei Gasthöfe.
Más vale tarde que nunca.
No hay mal que por bien no venga.
El 7 de junio llegamos a Sevilla con mucho calor.
¿Quién ha dejado la puerta del corral abierta?
Querido hermano: aquí todos estamos bien, gracias a Dios.
A quien madruga, Dios le ayuda.
Dime con quién andas y te diré quién eres.
En la feria se vendieron 23 mulas y 60 ovejas.
Camarón que se duerme se lo lleva la corriente.
El niño escribió su nombre en la pizarra con letra clara.
Ojos que no ven, corazón que no siente.
Del dicho al hecho hay mucho trecho.
La cosecha de aceitunas fue buena este año (más de 300 kilos).
¡Qué frío hace esta mañana en la montaña!
Poco a poco se va lejos.
En boca cerrada no entran moscas.
Mañana iremos al mercado a comprar pan, queso y vino.
Chi va piano va sano e va lontano.
L'abito non fa il monaco.
Il 18 settembre partimmo da Genova con la nave postale.
Caro amico, ti scrivo da una piccola città sul lago.
Chi dorme non piglia pesci.
Tra il dire e il fare c'è di mezzo il mare.
Abbiamo raccolto 35 cesti d'uva e 2 di fichi.
Meglio un uovo oggi che una gallina domani.
La neve è caduta tutta la notte; le strade sono chiuse.
Non è tutto oro quel che luccica.
Chi trova un amico trova un tesoro.
"Perché non sei venuto alla festa?" chiese la nonna.
Il lunedì si lava, il martedì si stira, il mercoledì si riposa.
Ogni medaglia ha il suo rovescio.
Roma non fu fatta in un giorno.
La campana della chiesa suonò tre volte: era mezzogiorno.
Devagar se vai ao longe.
Quem não arrisca não petisca.
No dia 9 de outubro chegámos a Lisboa debaixo de chuva.
Querida avó, as laranjas do quintal já estão maduras.
Água mole em pedra dura, tanto bate até que fura.
Mais vale um pássaro na mão do que dois a voar.
O pão custou 4 tostões e o leite mais 2.
Cada cabeça, sua sentença.
A pressa é inimiga da perfeição.
Em casa de ferreiro, espeto de pau.
Ele escreveu à mãe: "Não se preocupe, estou bem."
Quem canta seus males espanta.
O barco saiu do porto às seis horas, com 14 pescadores.
De grão em grão a galinha enche o papo.
Não deixes para amanhã o que podes fazer hoje.
Os sinos tocaram; a aldeia inteira foi à praça.
Wie niet waagt, wie niet wint.
Oost west, thuis best.
Op 21 april 1888 vertrok de trein naar Utrecht met vertraging.
Lieve moeder, het is hier koud, maar de mensen zijn vriendelijk.
Beter een goede buur dan een verre vriend.
Al draagt een aap een gouden ring, het is en blijft een lelijk ding.
De boer verkocht 11 koeien en kocht een nieuw paard.
Hoge bomen vangen veel wind.
Wat niet weet, wat niet deert.
Zoals de waard is, vertrouwt hij zijn gasten.
Het regende de hele week; de dijk hield het gelukkig.
"Waar is de sleutel van de schuur?" vroeg de knecht.
Na regen komt zonneschijn.
Eén zwaluw maakt nog geen zomer.
In het dorp stonden drie molens en één kerk.
Wie het kleine niet eert, is het grote niet weerd.
Sedikit demi sedikit, lama-lama menjadi bukit.
Air tenang menghanyutkan.
Pada tanggal 17 Agustus kami berangkat ke Bandung.
Ibu tersayang, di sini hujan turun setiap sore.
Bersatu kita teguh, bercerai kita runtuh.
Di mana bumi dipijak, di situ langit dijunjung.
Pasar pagi menjual 50 ikat sayur dan 8 keranjang mangga.
Tak ada rotan, akar pun jadi.
Berakit-rakit ke hulu, berenang-renang ke tepian.
Bagai air di daun talas.
"Kapan kamu pulang?" tanya adik dengan suara pelan.
Hemat pangkal kaya, rajin pangkal pandai.
Malu bertanya sesat di jalan.
Kapal itu berlabuh di pelabuhan pada pukul 6 pagi.
Ada udang di balik batu.
Guru kencing berdiri, murid kencing berlari.
Nenek menanam padi, jagung dan kacang di ladang.
Sambil menyelam minum air.
Anak-anak bermain layang-layang di lapangan (sampai senja).
The miller's wife kept bees behind the mill and sold honey on Fridays.
Sir, I beg to acknowledge your letter of the 2nd inst.; the goods arrive today.
Turn left at the old oak, then follow the stream for half a mile.
Notre maison a trois fenêtres, une porte verte et un grand jardin.
Das Buch lag aufgeschlagen auf dem Tisch, daneben eine Brille.
La maestra leyó el poema dos veces, despacio y en voz alta.
La farmacia apre alle 9 e chiude alle 19, tranne la domenica.
A professora pediu que copiássemos o ditado sem erros.
De bakker begint om vier uur; om zeven uur is het brood klaar.
Nelayan itu pulang membawa ikan yang banyak sekali.
Item: one pair of boots, mended; one coat, grey; 2 shirts.
Reçu de M. Dupont la somme de 150 francs pour le loyer de mars.
Herr Müller, bitte vergessen Sie nicht die Sitzung am Dienstag!
Recibí su carta del 4 de enero; contesto con retraso, perdone.
Gentile signora, le confermo la prenotazione per due notti.
Caro senhor, envio em anexo a lista dos livros pedidos.
Geachte heer, hierbij stuur ik u de rekening van vorige maand.
Yth. Bapak Kepala Sekolah, bersama surat ini saya mohon izin.
The stars came out one by one, and the fields grew quiet.
Le vent soufflait fort ; les volets claquaient toute la nuit.
Über den Bergen zogen dunkle Wolken auf, doch es blieb trocken.
Las golondrinas volvieron al tejado a finales de marzo.
Le rondini tornarono sotto il tetto alla fine di marzo.
As andorinhas voltaram ao telhado no fim de março.
De zwaluwen kwamen eind maart terug onder het dak.
Burung layang-layang kembali ke atap pada akhir Maret.
Lesson 4: copy each line three times, neatly and without blots.
Exercice 6 : recopiez le texte sans rature ; soignez l'écriture.
Aufgabe 8: Schreibe den Satz sauber ab und unterstreiche die Verben.
Ejercicio 5: copia las frases y subraya los adjetivos.
Esercizio 3: ricopia il brano e sottolinea i verbi.
Exercício 7: copie o texto com letra legível.
Oefening 2: schrijf de zinnen netjes over in je schrift.
Latihan 9: salinlah kalimat berikut dengan rapi.
Forty-two sheep, three dogs and one very tired shepherd came home.
Vingt-cinq élèves, un tableau noir et une seule fenêtre ouverte.
Zwölf Boxer jagen Viktor quer über den großen Sylter Deich.
El veloz murciélago hindú comía feliz cardillo y kiwi.
Quel vituperabile xenofobo zelante assaggia il whisky ed esclama: alleluja!
Luís argüia à Júlia que «brações, fé, chá, óxido, pôr, zângão» eram palavras do português.
Pa's wijze lynx bezag vroom het fikse aquaduct.
Muharjo seorang xenofobia universal yang takut pada warga jazirah.
"""
"""Proverbs, letters, notes and pangrams written for this project, in eight Latin-script languages."""


def load_corpus_words(text_file: Path | None) -> list[str]:
    """Words of the built-in corpus (``None``) or of a UTF-8 text file, NFC-normalised and whitespace-split."""
    if text_file is None:
        return _normalised_words(BUILT_IN_CORPUS)
    path = Path(text_file)
    if not path.is_file():
        raise FileNotFoundError(
            f"text file '{path}' does not exist or is not a file; fix `{TEXT_FILE_KEY}` "
            "or set it to null to use the built-in corpus"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read text file '{path}' (`{TEXT_FILE_KEY}`) as UTF-8: {error}") from error
    words = _normalised_words(text)
    if not words:
        raise ValueError(f"text file '{path}' (`{TEXT_FILE_KEY}`) contains no words")
    return words


def _normalised_words(text: str) -> list[str]:
    # NFC so that an accented letter is one code point, as in the labels and the fonts' cmaps.
    return unicodedata.normalize("NFC", text).split()


def sample_line_text(words: list[str], line_chars: tuple[int, int], rng: np.random.Generator) -> str:
    """A run of consecutive words, from a random start, with between ``min`` and ``max`` characters.

    A target length is drawn uniformly from [min, max] (so short and long lines are equally common) and words
    are added one by one while the line stays within it; the corpus is read as a loop, so a window may wrap
    from the last word to the first. A first word longer than the target is kept whole up to ``max``
    characters and cut there. When whole words cannot reach ``min``, the next word is cut to fill the line up
    to the target, as a line break inside a word would; when that cut would end on the space before the word,
    one letter more is kept (only when ``min == max`` does that not fit, and the line is one character short).
    Uses exactly two draws from ``rng``.
    """
    min_chars, max_chars = line_chars
    if not words:
        raise ValueError("cannot sample a line from an empty word list")
    start = int(rng.integers(len(words)))
    target_chars = int(rng.integers(min_chars, max_chars + 1))
    following_words = (words[(start + offset) % len(words)] for offset in range(1, len(words)))
    line = words[start][:max_chars]
    for word in following_words:
        if len(line) + 1 + len(word) > target_chars:
            if len(line) < min_chars:
                line = _cut_into_next_word(line, word, target_chars, max_chars)
            break
        line += " " + word
    return line


def _cut_into_next_word(line: str, word: str, target_chars: int, max_chars: int) -> str:
    cut_chars = target_chars
    if len(line) + 1 == target_chars:
        # A cut right after the space would leave a trailing blank, which is no character of the line.
        cut_chars = min(target_chars + 1, max_chars)
    return (line + " " + word)[:cut_chars].rstrip()
